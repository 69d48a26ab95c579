"""``propgrad demo``: an interactive page in the browser, served on a loopback address only.

Pick or upload an image, choose a source and its parameters (inputs built from the sources'
declared parameters), a model, and see the verdict, the behaviour curve, the permutation null,
a slider over the steps and the baselines' attribution maps. The page is built with Gradio, the
optional ``demo`` extra (``pip install 'propgrad[demo]'``).

``import propgrad`` never imports this package; :mod:`propgrad.demo.session` holds the work
(no Gradio), :mod:`propgrad.demo.app` the page and the server (Gradio, imported when it runs).
"""

from __future__ import annotations
