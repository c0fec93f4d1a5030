"""Runtime: data loading, augmentation, training and evaluation for compiled networks."""
