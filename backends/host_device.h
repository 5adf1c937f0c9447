// Marks a function that compiles for the host and, under nvcc, for the device too, so that one
// definition serves both backends.
#pragma once

#if defined(__CUDACC__)
#define STRATA_HOST_DEVICE __host__ __device__
#else
#define STRATA_HOST_DEVICE
#endif
