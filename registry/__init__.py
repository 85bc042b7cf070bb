"""The model catalogue over BentoML's local model store."""
