# src/: the pixart command, the tokenizer and the pipeline.
pixart_SOURCES += src/main.c src/cli.h
pixart_SOURCES += src/cmd_tokenize.c

# Tokenizer: SentencePiece unigram + transformers T5Tokenizer + prompt preprocessing.
libpixart_la_SOURCES += \
	src/spm.c src/spm.h \
	src/t5_tokenizer.c src/t5_tokenizer.h \
	src/unicode.c src/unicode.h src/unicode_tables.c
