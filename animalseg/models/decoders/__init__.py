"""Decoders: from an encoder's feature pyramid to one feature map at the input resolution."""
