"""Small keras-hub encoders with segment / token-type ids, built offline with trained-like values (issue 27).

Each is 2 layers, width 64, a vocabulary of 1000 and a dynamic sequence length: BERT as a text
classifier, ALBERT, ELECTRA and FNet backbones. Layer norms and biases get seeded trained-like
values (`tfcpu.graph._keras_weights.realistic_weights`), so no fold passes a check by accident.
"""

from __future__ import annotations

from typing import Any

VOCAB = 1000
WIDTH = 64
FAMILIES = ("bert_classifier", "albert", "electra", "fnet")


def build(name: str) -> Any:
    """The Keras model ``name`` (one of `FAMILIES`), random weights, trained-like norms and biases."""
    import keras_hub

    from tfcpu.graph._keras_weights import realistic_weights

    common = {"num_layers": 2, "hidden_dim": WIDTH, "intermediate_dim": 2 * WIDTH, "max_sequence_length": 32}
    if name == "bert_classifier":
        backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_heads=2, **common)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None)
    elif name == "albert":
        model = keras_hub.models.AlbertBackbone(vocabulary_size=VOCAB, num_heads=2, embedding_dim=32, **common)
    elif name == "electra":
        model = keras_hub.models.ElectraBackbone(vocab_size=VOCAB, num_heads=2, embedding_dim=32, **common)
    elif name == "fnet":
        model = keras_hub.models.FNetBackbone(vocabulary_size=VOCAB, **common)
    else:
        raise ValueError(f"unknown family {name!r}; one of {FAMILIES}")
    realistic_weights(model, seed=0)
    return model
