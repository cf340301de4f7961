"""Online learning: the model host, online PPO, the challenger, model versions."""
