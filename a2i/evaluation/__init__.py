"""Evaluation (thesis 2.4, 5.2.2, 5.2.3): the instrument classifier, conditional adherence and FID."""

LR_SCHEDULES = ("constant", "onecycle")  # the classifier's learning rate: a2i.evaluation.classifier (light, for a2i.config)
