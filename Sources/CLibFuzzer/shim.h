// libFuzzer's driver, for a program that has its own main. `-sanitize=fuzzer` links it;
// only the fuzz build (-DFUZZING) calls it, so other builds need no library.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
