"""Online inference: decode requests, load models into a cache, micro-batch forward passes, export."""
