"""Where bars come from and where orders go: feeds and brokers (paper, ccxt)."""
