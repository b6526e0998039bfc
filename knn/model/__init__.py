"""MobileNet in, embeddings and exported models out: backbones, weights, the embedder, and the
TensorFlow work that runs once in a child process."""
