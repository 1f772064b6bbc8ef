# tensor/: the tensor core, half-precision conversion, JSON and safetensors I/O.
libpx_core_la_SOURCES += \
	tensor/error.c tensor/error.h \
	tensor/json.c tensor/json.h \
	tensor/tensor.c tensor/tensor.h tensor/half.h \
	tensor/safetensors.c tensor/safetensors.h \
	tensor/npy.c tensor/npy.h \
	tensor/outfile.c tensor/outfile.h \
	tensor/dump.c tensor/dump.h \
	tensor/memstat.c tensor/memstat.h \
	tensor/lfs.h
