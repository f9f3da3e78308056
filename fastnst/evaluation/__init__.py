"""Quality metrics for a trained model: the training losses, SSIM and MSE against the photo,
time per image, how many Gatys optimisation steps reach the network's loss, and whether an
ImageNet classifier still sees the photo's class (content retention); and the report
``fastnst evaluate`` writes from them (:func:`fastnst.evaluation.run.evaluate_model`).

Losses are measured with the loss settings stored in the model file (``ModelInfo.loss``),
so a model is judged by the objective it was trained on, and the Gatys baseline
(:mod:`fastnst.optimize.gatys`) is judged by that same objective.
"""
