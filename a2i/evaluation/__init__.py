"""Evaluation (thesis 2.4, 5.2.2, 5.2.3): the instrument classifier, conditional adherence and FID."""
