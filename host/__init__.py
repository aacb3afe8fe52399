"""Host-side orchestration: the stage graph, cache keys, images and runners."""
