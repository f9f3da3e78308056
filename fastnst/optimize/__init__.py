"""Style transfer by optimising pixels: Gatys et al. for one image (:mod:`.gatys`), Ruder et
al. for a video built on it (:mod:`.video`), and the ``fastnst optimize`` command (:mod:`.cli`)."""
