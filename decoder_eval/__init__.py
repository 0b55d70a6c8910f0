"""Decoder track: frozen causal LMs under rewiring plans on LAMBADA, ARC, HellaSwag, WinoGrande, GSM8K."""
