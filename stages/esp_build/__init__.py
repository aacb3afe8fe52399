"""esp-build stage: `idf.py build` / `idf.py size` of the ESP-IDF project the esp stage generated (espressif/idf image)."""
