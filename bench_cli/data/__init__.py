"""Real-image data for task benchmarks: bundled textures and seeded mosaics (no downloads)."""
