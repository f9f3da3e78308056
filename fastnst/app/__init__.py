"""The web app (``fastnst app``, the ``app`` extra): stylize photos, clips and a live webcam,
blend styles, and add a style from your own images, in a browser. Models run on the backend
``fastnst stylize`` would pick (onnxruntime on a CPU: no torch); only adding a style needs
the ``train`` extra. Only :mod:`fastnst.app.ui`, :mod:`fastnst.app.handlers` and
:mod:`fastnst.app.cli` import Gradio."""
