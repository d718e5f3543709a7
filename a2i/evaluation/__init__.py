"""Evaluation (thesis 2.4, 5.2.2, 5.2.3): the instrument classifier, conditional adherence and FID."""

LR_SCHEDULES = ("constant", "onecycle")  # the classifier's learning rate: a2i.evaluation.classifier (light, for a2i.config)
# The feature spaces of the Frechet distances (`feature_extractor` in the metrics) and their metrics' prefix:
# pytorch-fid's InceptionV3 (FID), or the instrument classifier's penultimate layer (never called FID).
INCEPTION_NAME = "inception_v3_pool3"
FEATURES_NAME = "classifier_penultimate"
FRECHET_PREFIX = {INCEPTION_NAME: "fid", FEATURES_NAME: "fid_classifier"}
MAX_BOOTSTRAP = 100_000  # resamples: params.yaml's evaluate.bootstrap and the commands'
