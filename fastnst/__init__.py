"""fastnst: fast feed-forward multi-style neural style transfer."""
