"""Adversarial attacks (FGSM, PGD) and their pictures."""
