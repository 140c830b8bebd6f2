// The CBLAS interface of OpenBLAS (apt: libopenblas-dev), and nothing else.
#include <cblas.h>
