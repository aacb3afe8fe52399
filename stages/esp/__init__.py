"""esp stage: ESP-DL quantization with esp-ppq, simulated accuracy, ESP32-S3 memory budget, ESP-IDF project."""
