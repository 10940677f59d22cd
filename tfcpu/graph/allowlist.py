"""The ops a model may use without being trusted: ops that only compute on tensors.

The safety scan (`tfcpu.graph.safety`) works by *allowlist*: every node of the graph and of every
function in its library must be one of the op types below, or a call of a function that is itself
in the library (and so scanned too). Anything else is refused before TensorFlow sees the model:
file, network and process ops, Python callbacks, data pipelines (which read and write files:
CSV datasets, dataset caches, snapshots), checkpoint save/restore, table initialisers from files,
summary writers, debug ops that print or dump, queues and session state shared across runs, TPU
and XLA launch ops, and ops this TensorFlow does not know.

Each group says why its ops are harmless: they read their input tensors and attributes and
write their output tensors (or a variable or table that lives in the process's memory), and
nothing else. The lists are explicit on purpose: a new TensorFlow release adding an op does not
widen what an untrusted model may do. `tests/unit/test_safety_allowlist.py` checks that every name
is an op of the installed TensorFlow and that the model families tfcpu supports pass.

To run a model that needs an op outside the list, allow that op type by name:
``tfcpu.load(path, allow_unsafe_ops=["InitializeTableFromTextFileV2"])`` or
``--allow-unsafe-ops InitializeTableFromTextFileV2``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALLOWED_OPS", "GROUPS", "OpGroup", "group_of"]


@dataclass(frozen=True)
class OpGroup:
    """A named group of allowed op types and why they are safe."""

    name: str
    reason: str
    ops: tuple[str, ...]


# fmt: off
GROUPS: tuple[OpGroup, ...] = (
    OpGroup(
        "math",
        "elementwise arithmetic, comparisons, reductions and matrix products: tensors in, tensors out",
        (
            "Abs", "AccumulateNV2", "Acos", "Acosh", "Add", "AddN", "AddV2", "All", "Angle", "Any",
            "ApproximateEqual", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atan2", "Atanh", "BatchMatMul",
            "BatchMatMulV2", "BatchMatMulV3", "BesselI0", "BesselI0e", "BesselI1", "BesselI1e", "Betainc",
            "Bincount", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Bucketize", "Cast", "Ceil", "ClipByValue",
            "Complex", "ComplexAbs", "Conj", "Cos", "Cosh", "Cross", "Cumprod", "Cumsum", "CumulativeLogsumexp",
            "DenseBincount", "Digamma", "Div", "DivNoNan", "Einsum", "Equal", "Erf", "Erfc", "Erfinv",
            "EuclideanNorm", "Exp", "Expm1", "Floor", "FloorDiv", "FloorMod", "Greater", "GreaterEqual",
            "HistogramFixedWidth", "Igamma", "Igammac", "Imag", "Inv", "Invert", "IsFinite", "IsInf", "IsNan",
            "LeftShift", "Less", "LessEqual", "Lgamma", "LinSpace", "Log", "Log1p", "LogicalAnd", "LogicalNot",
            "LogicalOr", "MatMul", "Max", "Maximum", "Mean", "Min", "Minimum", "Mod", "Mul", "MulNoNan", "Ndtri",
            "Neg", "NextAfter", "NotEqual", "Polygamma", "PopulationCount", "Pow", "Prod", "Range", "Real",
            "RealDiv", "Reciprocal", "RightShift", "Rint", "Round", "Rsqrt", "SegmentMax", "SegmentMean",
            "SegmentMin", "SegmentProd", "SegmentSum", "Select", "SelectV2", "Sigmoid", "Sign", "Sin", "Sinh",
            "Sqrt", "Square", "SquaredDifference", "Sub", "Sum", "Tan", "Tanh", "TruncateDiv", "TruncateMod",
            "UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd", "UnsortedSegmentSum", "Xdivy",
            "Xlog1py", "Xlogy", "Zeta",
        ),
    ),
    OpGroup(
        "linalg",
        "linear algebra and spectral transforms (FNet's FFT among them): tensors in, tensors out",
        (
            "BandedTriangularSolve", "Cholesky", "Eig", "FFT", "FFT2D", "FFT3D", "IFFT", "IFFT2D", "IFFT3D",
            "IRFFT", "IRFFT2D", "IRFFT3D", "LogMatrixDeterminant", "Lu", "MatrixBandPart", "MatrixDeterminant",
            "MatrixDiag", "MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3", "MatrixDiagV2",
            "MatrixDiagV3", "MatrixExponential", "MatrixInverse", "MatrixLogarithm", "MatrixSetDiag",
            "MatrixSetDiagV2", "MatrixSetDiagV3", "MatrixSolve", "MatrixSolveLs", "MatrixSquareRoot",
            "MatrixTriangularSolve", "Qr", "RFFT", "RFFT2D", "RFFT3D", "SelfAdjointEigV2", "Svd",
            "TridiagonalMatMul", "TridiagonalSolve",
        ),
    ),
    OpGroup(
        "nn",
        "convolutions, pooling, activations, normalisations and their fused forms (TensorFlow's remapper "
        "and tfcpu's passes write the fused ones): tensors in, tensors out",
        (
            "AvgPool", "AvgPool3D", "BatchNormWithGlobalNormalization", "BiasAdd", "BiasAddV1", "Conv",
            "Conv2D", "Conv3D", "CTCBeamSearchDecoder", "CTCGreedyDecoder", "DepthwiseConv2dNative",
            "Dilation2D", "Elu", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "FusedPadConv2D",
            "FusedResizeAndPadConv2D", "InTopK", "InTopKV2", "L2Loss", "LRN", "LeakyRelu", "LogSoftmax",
            "MaxPool", "MaxPool3D", "MaxPoolV2", "MaxPoolWithArgmax", "NthElement", "Relu", "Relu6", "Selu",
            "Softmax", "Softplus", "Softsign", "TopKV2", "_FusedBatchNormEx", "_FusedConv2D", "_FusedConv3D",
            "_FusedDepthwiseConv2dNative", "_FusedMatMul", "_UnaryOpsComposition", "BlockLSTM", "BlockLSTMV2",
            "GRUBlockCell", "LSTMBlockCell",
        ),
    ),
    OpGroup(
        "gradients",
        "gradient kernels a SavedModel's custom-gradient functions may carry: tensors in, tensors out",
        (
            "AvgPoolGrad", "BiasAddGrad", "BroadcastGradientArgs", "Conv2DBackpropFilter",
            "Conv2DBackpropInput", "DepthwiseConv2dNativeBackpropFilter", "DepthwiseConv2dNativeBackpropInput",
            "EluGrad", "FusedBatchNormGradV3", "LeakyReluGrad", "MaxPoolGrad", "MaxPoolGradV2", "PreventGradient",
            "ReciprocalGrad", "Relu6Grad", "ReluGrad", "RsqrtGrad", "SeluGrad", "SigmoidGrad", "SoftplusGrad",
            "SoftsignGrad", "SqrtGrad", "StopGradient", "StridedSliceGrad", "TanhGrad",
        ),
    ),
    OpGroup(
        "array",
        "shapes, layouts, slicing, gathering and constants: tensors in, tensors out",
        (
            "BatchToSpace", "BatchToSpaceND", "Bitcast", "BroadcastArgs", "BroadcastTo", "CheckNumerics",
            "CheckNumericsV2", "Concat", "ConcatOffset", "ConcatV2", "ConjugateTranspose", "Const",
            "DataFormatDimMap", "DataFormatVecPermute", "DepthToSpace", "Diag", "DiagPart", "DynamicPartition",
            "DynamicStitch", "Empty", "EnsureShape", "ExpandDims", "ExtractImagePatches", "ExtractVolumePatches",
            "Fill", "Gather", "GatherNd", "GatherV2", "GuaranteeConst", "HostConst", "Identity", "IdentityN",
            "InplaceAdd", "InplaceSub", "InplaceUpdate", "InvertPermutation", "ListDiff", "LowerBound",
            "MirrorPad", "OneHot", "OnesLike", "Pack", "Pad", "PadV2", "ParallelConcat", "ParallelDynamicStitch",
            "Placeholder", "PlaceholderV2", "PlaceholderWithDefault", "Rank", "Reshape", "Reverse",
            "ReverseSequence", "ReverseV2", "Roll", "ScatterNd", "SetSize", "Shape", "ShapeN", "Size", "Slice",
            "Snapshot", "SpaceToBatch", "SpaceToBatchND", "SpaceToDepth", "Split", "SplitV", "Squeeze",
            "StridedSlice", "TensorScatterAdd", "TensorScatterMax", "TensorScatterMin", "TensorScatterSub",
            "TensorScatterUpdate", "TensorStridedSliceUpdate", "Tile", "TopK", "Transpose", "Unique", "UniqueV2",
            "UniqueWithCounts", "UniqueWithCountsV2", "Unpack", "UnravelIndex", "UpperBound", "Where",
            "ZerosLike", "_Arg", "_Retval", "_DeviceArg", "_DeviceRetval", "_EagerConst", "_HostCast",
        ),
    ),
    OpGroup(
        "control-flow",
        "branches, loops and function calls: they run other ops of this graph, which are scanned too",
        (
            "Case", "ControlTrigger", "Enter", "Exit", "For", "If", "LoopCond", "Merge", "NextIteration", "NoOp",
            "PartitionedCall", "RefEnter", "RefExit", "RefIdentity", "RefMerge", "RefNextIteration", "RefSelect",
            "RefSwitch", "StatefulPartitionedCall", "StatelessCase", "StatelessIf", "StatelessWhile", "Switch",
            "While", "_If", "_SwitchN", "_While", "Assert",
        ),
    ),
    OpGroup(
        "tensor-lists",
        "lists and arrays of tensors in memory, written by loops (tf.while_loop, RNN layers)",
        (
            "EmptyTensorList", "TensorArrayCloseV3", "TensorArrayConcatV3", "TensorArrayGatherV3",
            "TensorArrayReadV3", "TensorArrayScatterV3", "TensorArraySizeV3", "TensorArraySplitV3",
            "TensorArrayV3", "TensorArrayWriteV3", "TensorListConcatV2", "TensorListElementShape",
            "TensorListFromTensor", "TensorListGather", "TensorListGetItem", "TensorListLength",
            "TensorListPopBack", "TensorListPushBack", "TensorListReserve", "TensorListResize",
            "TensorListScatterIntoExistingList", "TensorListScatterV2", "TensorListSetItem", "TensorListSplit",
            "TensorListStack", "OptionalFromValue", "OptionalGetValue", "OptionalHasValue", "OptionalNone",
        ),
    ),
    OpGroup(
        "variables",
        "variables held in the process's memory (read, assigned, gathered); their values come from the "
        "SavedModel's checkpoint, which tfcpu freezes into constants",
        (
            "Assign", "AssignAdd", "AssignAddVariableOp", "AssignSub", "AssignSubVariableOp", "AssignVariableOp",
            "DestroyResourceOp", "DisableCopyOnRead", "IsVariableInitialized", "ReadVariableOp", "ResourceGather",
            "ResourceGatherNd", "ResourceScatterAdd", "ResourceScatterUpdate", "VarHandleOp", "VarIsInitializedOp",
            "Variable", "VariableShape", "VariableV2", "_ReadVariablesOp", "_VarHandlesOp",
        ),
    ),
    OpGroup(
        "random",
        "random numbers (dropout and initialisers; inference graphs do not call them)",
        (
            "Multinomial", "RandomGamma", "RandomShuffle", "RandomStandardNormal", "RandomUniform",
            "RandomUniformInt", "StatelessMultinomial", "StatelessRandomGetKeyCounter",
            "StatelessRandomGetKeyCounterAlg", "StatelessRandomNormal", "StatelessRandomNormalV2",
            "StatelessRandomUniform", "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2",
            "StatelessRandomUniformInt", "StatelessRandomUniformIntV2", "StatelessRandomUniformV2",
            "StatelessTruncatedNormal", "StatelessTruncatedNormalV2", "TruncatedNormal",
        ),
    ),
    OpGroup(
        "quantized",
        "INT8 kernels and their (de)quantisation: what Intel Neural Compressor and TensorFlow's quantisation "
        "write into a graph",
        (
            "Dequantize", "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
            "QuantizeAndDequantize", "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3",
            "QuantizeAndDequantizeV4", "QuantizeDownAndShrinkRange", "QuantizeV2", "QuantizedAdd",
            "QuantizedAvgPool", "QuantizedBiasAdd", "QuantizedConcat", "QuantizedConcatV2", "QuantizedConv2D",
            "QuantizedConv2DAndRelu", "QuantizedConv2DAndReluAndRequantize", "QuantizedConv2DAndRequantize",
            "QuantizedConv2DPerChannel", "QuantizedConv2DWithBias", "QuantizedConv2DWithBiasAndRelu",
            "QuantizedConv2DWithBiasAndReluAndRequantize", "QuantizedConv2DWithBiasAndRequantize",
            "QuantizedConv2DWithBiasSignedSumAndReluAndRequantize", "QuantizedConv2DWithBiasSumAndRelu",
            "QuantizedConv2DWithBiasSumAndReluAndRequantize", "QuantizedDepthwiseConv2D",
            "QuantizedDepthwiseConv2DWithBias", "QuantizedDepthwiseConv2DWithBiasAndRelu",
            "QuantizedDepthwiseConv2DWithBiasAndReluAndRequantize", "QuantizedInstanceNorm", "QuantizedMatMul",
            "QuantizedMatMulWithBias", "QuantizedMatMulWithBiasAndDequantize", "QuantizedMatMulWithBiasAndRelu",
            "QuantizedMatMulWithBiasAndReluAndRequantize", "QuantizedMatMulWithBiasAndRequantize",
            "QuantizedMaxPool", "QuantizedMul", "QuantizedRelu", "QuantizedRelu6", "QuantizedReluX",
            "QuantizedReshape", "QuantizedResizeBilinear", "RequantizationRange", "RequantizationRangePerChannel",
            "Requantize", "RequantizePerChannel", "UniformDequantize", "UniformQuantize",
            "UniformQuantizedAdd", "UniformQuantizedClipByValue", "UniformQuantizedConvolution",
            "UniformQuantizedDot", "UniformRequantize", "_FusedQuantizedConv2D",
            "_FusedQuantizedDepthwiseConv2D", "_QuantizedMatMul", "_QuantizedMaxPool3D",
        ),
    ),
    OpGroup(
        "onednn",
        "oneDNN's rewrites of the kernels above (they appear in graphs dumped after TensorFlow's oneDNN pass)",
        (
            "_MklAvgPool", "_MklBatchMatMulV2", "_MklConv2D", "_MklDepthwiseConv2dNative", "_MklDequantize",
            "_MklEinsum", "_MklFusedBatchMatMulV2", "_MklFusedBatchNormEx", "_MklFusedBatchNormV3",
            "_MklFusedConv2D", "_MklFusedDepthwiseConv2dNative", "_MklFusedMatMul", "_MklLayerNorm",
            "_MklMatMul", "_MklMaxPool", "_MklNativeAvgPool", "_MklNativeConv2D",
            "_MklNativeDepthwiseConv2dNative", "_MklNativeFusedBatchNormEx", "_MklNativeFusedBatchNormV3",
            "_MklNativeFusedConv2D", "_MklNativeFusedDepthwiseConv2dNative", "_MklNativeFusedMatMul",
            "_MklNativeMaxPool", "_MklNativePadWithConv2D", "_MklNativePadWithFusedConv2D", "_MklQuantizeV2",
            "_MklQuantizedAvgPool", "_MklQuantizedConcatV2", "_MklQuantizedConv2DWithBiasAndReluAndRequantize",
            "_MklQuantizedConv2DWithBiasAndRequantize", "_MklQuantizedConv2DWithBiasSumAndReluAndRequantize",
            "_MklQuantizedMatMulWithBias", "_MklQuantizedMatMulWithBiasAndDequantize",
            "_MklQuantizedMatMulWithBiasAndRelu", "_MklQuantizedMatMulWithBiasAndReluAndRequantize",
            "_MklQuantizedMatMulWithBiasAndRequantize", "_MklQuantizedMaxPool", "_MklRelu", "_MklRelu6",
            "_MklSoftmax", "_MklSwish", "_MklTanh", "_MklTranspose",
        ),
    ),
    OpGroup(
        "image",
        "resizing, cropping and colour maths on image tensors, and decoding image bytes already in memory",
        (
            "AdjustContrastv2", "AdjustHue", "AdjustSaturation", "CombinedNonMaxSuppression", "CropAndResize",
            "DecodeAndCropJpeg", "DecodeBmp", "DecodeGif", "DecodeImage", "DecodeJpeg", "DecodePng",
            "DecodeWebP", "DrawBoundingBoxesV2", "EncodeJpeg", "EncodePng", "ExtractGlimpseV2",
            "ExtractJpegShape", "HSVToRGB", "ImageProjectiveTransformV2", "ImageProjectiveTransformV3",
            "NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5", "RGBToHSV", "ResizeArea",
            "ResizeBicubic", "ResizeBilinear", "ResizeNearestNeighbor", "ScaleAndTranslate",
        ),
    ),
    OpGroup(
        "strings",
        "string and text maths on tensors in memory (tokenisers, hashing, formatting)",
        (
            "AsString", "DecodeBase64", "DecodeRaw", "EncodeBase64", "Fingerprint", "ReduceJoin", "RegexFullMatch",
            "RegexReplace", "StaticRegexFullMatch", "StaticRegexReplace", "StringFormat", "StringJoin",
            "StringLength", "StringLower", "StringNGrams", "StringSplit", "StringSplitV2", "StringStrip",
            "StringToHashBucket", "StringToHashBucketFast", "StringToHashBucketStrong", "StringToNumber",
            "StringUpper", "Substr", "UnicodeDecode", "UnicodeDecodeWithOffsets", "UnicodeEncode", "UnicodeScript",
            "UnicodeTranscode", "UnsortedSegmentJoin", "_TensorToHashBucketFast",
        ),
    ),
    OpGroup(
        "sparse-ragged",
        "sparse and ragged tensors (embedding lookups, tokeniser outputs): tensors in, tensors out",
        (
            "RaggedBincount", "RaggedGather", "RaggedRange", "RaggedTensorFromVariant", "RaggedTensorToSparse",
            "RaggedTensorToTensor", "RaggedTensorToVariant", "SparseAdd", "SparseConcat", "SparseFillEmptyRows",
            "SparseMatMul", "SparseReduceMax", "SparseReduceSum", "SparseReorder", "SparseReshape",
            "SparseSegmentMean", "SparseSegmentMeanWithNumSegments", "SparseSegmentSqrtN",
            "SparseSegmentSqrtNWithNumSegments", "SparseSegmentSum", "SparseSegmentSumWithNumSegments",
            "SparseSlice", "SparseSoftmax", "SparseSplit", "SparseTensorDenseAdd", "SparseTensorDenseMatMul",
            "SparseToDense", "CompositeTensorVariantFromComponents", "CompositeTensorVariantToComponents",
        ),
    ),
    OpGroup(
        "tables",
        "lookup tables in memory, filled from tensors (a table filled from a text file is refused: it reads "
        "a file)",
        (
            "AnonymousHashTable", "AnonymousMutableDenseHashTable", "AnonymousMutableHashTable",
            "AnonymousMutableHashTableOfTensors", "HashTable", "HashTableV2", "InitializeTable",
            "InitializeTableV2", "LookupTableExportV2", "LookupTableFind", "LookupTableFindV2",
            "LookupTableImportV2", "LookupTableInsertV2", "LookupTableRemoveV2", "LookupTableSize",
            "LookupTableSizeV2", "MutableDenseHashTableV2", "MutableHashTableOfTensorsV2", "MutableHashTableV2",
        ),
    ),
)
# fmt: on

ALLOWED_OPS: frozenset[str] = frozenset(op for group in GROUPS for op in group.ops)
"""Every op type on the allowlist."""

_GROUP_OF: dict[str, str] = {op: group.name for group in GROUPS for op in group.ops}


def group_of(op: str) -> str | None:
    """The allowlist group of op type ``op``, or None when it is not allowed."""
    return _GROUP_OF.get(op)
