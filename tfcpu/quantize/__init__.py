"""Post-training quantisation: INT8 through Intel Neural Compressor 3.x, BF16 where the CPU has it.

This package is the only place in tfcpu that imports ``neural_compressor`` (lazily, inside
`Quantizer.run()`), so ``import tfcpu.quantize`` stays cheap.
"""

from tfcpu.quantize.quantizer import Quantizer
from tfcpu.quantize.result import OpTypeRow, QuantizationResult

__all__ = ["OpTypeRow", "QuantizationResult", "Quantizer"]
