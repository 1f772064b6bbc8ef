# src/: the pixart command, the tokenizer and the pipeline.
pixart_SOURCES += src/main.c src/cli.h
