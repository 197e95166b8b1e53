"""Input normalisation shared by pretraining, probes and the world model."""

#: ImageNet channel statistics: V-JEPA normalises RGB in [0, 1] with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
