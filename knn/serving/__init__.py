"""The serving process: settings read once from the environment, the adaptation of aiortc,
memory, metrics. Imports knn.live; nothing in knn.live imports it."""
