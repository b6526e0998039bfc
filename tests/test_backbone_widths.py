"""knn.core.backbone_widths: the width table agrees with the networks Keras builds."""

from __future__ import annotations

import pytest

from knn.core.backbone_widths import EMBEDDING_WIDTHS, embedding_width
from knn.core.limits import MAX_DIM
from knn.model.backbones import BACKBONES, RESOLUTIONS, get_backbone


def test_every_offered_network_has_its_width_once():
    assert {spec.network.removesuffix("_224") for spec in BACKBONES.values()} == set(EMBEDDING_WIDTHS)
    assert max(EMBEDDING_WIDTHS.values()) <= MAX_DIM


def test_the_width_does_not_depend_on_the_input_size():
    for backbone in BACKBONES:
        assert {get_backbone(backbone).at(size).dim for size in RESOLUTIONS} == {embedding_width(backbone)}
    assert embedding_width("mobilenet_v2_1.0_320") == 1280
    assert embedding_width("resnet_50_224") is None and embedding_width("") is None
    with pytest.raises(ValueError, match="Unknown backbone"):
        get_backbone("resnet_50_224")


def test_the_table_is_what_keras_builds():
    keras = pytest.importorskip("keras")
    for spec in BACKBONES.values():
        model = spec.build_keras_model(weights=None)  # the architecture only: nothing is downloaded
        assert model.output_shape[-1] == spec.dim, spec.id
        keras.backend.clear_session()
