"""``tfcpu demo``: the white paper's Figure 1 on your machine, each step measured in one run.

Rows (each measured in fresh child processes, one after the other, same batch size and
timed duration, synthetic data prepared outside the timed region, all through
`tfcpu.runtime.multi.run_instances()` and its one timed loop):

1. Keras ``model.predict`` — what most users run first (for a graph file: the frozen graph
   with TensorFlow's default threads);
2. the frozen graph on oneDNN with tuned threads (intra-op = usable physical cores, inter-op = 1):
   the paper's steps 2 and 3 (stock TensorFlow leaves oneDNN off on CPUs without VNNI/BF16/AMX,
   where it still pays for FP32: 1.2x on ResNet-50 on an AVX2-only EPYC);
3. the optimised graph (`tfcpu.GraphOptimizer.default()`);
4. the optimised graph as several pinned instances;
5. INT8 (optimised, then quantised by Intel Neural Compressor, synthetic calibration);
6. INT8 as several pinned instances;
7. BF16: the graph ``Quantizer().bf16()`` makes, on CPUs with AVX512_BF16 or AMX_BF16 (elsewhere
   the row is skipped with the reason);

plus an ITEX row (the optimised graph under Intel Extension for TensorFlow's OpenMP pool) when
ITEX is installed, then the OpenVINO rows (`tfcpu.demo._openvino`): the optimised graph on OpenVINO in
FP32, BF16 (where accelerated) and INT8 (NNCF, synthetic calibration), each in pinned children on the
OpenVINO backend, labelled from what the compiled model ran; without ``openvino`` they are
skipped with the reason. The best row is picked across both backends; speedups stay relative to the
first row. A row's precision is read from the ops of the graph it timed. Every row reports
its spread (the throughput of each third of its timed region) and is marked when its difference
from the row above is within that noise. A row that fails is reported as failed with its reason;
the others still run.

The steps are data (`tfcpu.demo._steps`), walked in one loop (`tfcpu.demo._run`);
rows and result live in `tfcpu.demo._result`.
"""

from __future__ import annotations

from tfcpu.demo._result import DemoResult, DemoRow, mark_noise, with_speedups
from tfcpu.demo._run import DEFAULT_MODEL, default_batch_size, default_instances, run_demo, write_outputs

__all__ = [
    "DEFAULT_MODEL",
    "DemoResult",
    "DemoRow",
    "default_batch_size",
    "default_instances",
    "mark_noise",
    "run_demo",
    "with_speedups",
    "write_outputs",
]
