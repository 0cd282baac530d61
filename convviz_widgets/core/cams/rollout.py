"""Attention rollout (Abnar & Zuidema 2020): how much of each patch flows into the output through the attention."""

from __future__ import annotations

from typing import Any

from ..attention import attention, readout_row, rollout
from .base import GraphMethod, register_cam_method


class AttentionRollout(GraphMethod):
    """map = the readout row of prod_l norm(mean over heads of A_l + I), read on the patch grid.

    Class-agnostic: it explains no class, and `class_index`/`target` change only the score reported with it
    (`CAM.target` says so). It reads every attention layer of the model, from the first to the last, so `layer=`
    is not used: the map is drawn on the last attention layer's patch grid (`CAM.layer`). The row read is the class
    token's when the head reads one (else the mean over all tokens; `Inspector.attention_readout` says which).
    Applies to models whose `keras.layers.MultiHeadAttention` layers attend among the tokens of one patch grid.
    """

    name, label, order = "rollout", "Attention rollout", 8
    tooltip = ("class-agnostic (the same map for every class): the attention flowing from the class token (or every "
               "token) to each patch, through every attention layer")
    class_agnostic = True

    def applies_to(self, inspector: Any) -> str | None:
        """Only models whose attention layers can be read, on one patch grid."""
        return attention(inspector.graph).reason or None

    def read_at(self, inspector: Any, layer: Any) -> Any:
        """The node after the last attention layer: the map is on its patch grid."""
        return attention(inspector.graph).sites[-1].node

    def graph_map(self, inspector: Any, graph: Any, node: Any) -> Any:
        """The rollout of every attention layer of `graph`, read at the class token (or the mean over tokens)."""
        att = attention(graph)
        index, _ = inspector.attention_readout
        return rollout(att.weights, readout_row(index, att.tokens.lead + att.tokens.h * att.tokens.w), att.tokens)


register_cam_method(AttentionRollout)
