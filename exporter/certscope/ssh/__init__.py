"""SSH: the transport codec, the posture probe, the algorithm database and key facts."""
