"""CIFAR-10's per-channel mean and standard deviation (of [0, 1] images): the default
normalisation every ``Classifier`` applies. Torch-free, so that the registry's name checks are too.
"""
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2471, 0.2435, 0.2616)
