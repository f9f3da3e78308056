"""The web app (``fastnst app``, the ``app`` extra): stylize photos and clips, blend styles,
and add a style from your own images, in a browser. Only :mod:`fastnst.app.ui` and
:mod:`fastnst.app.cli` import Gradio."""
