#include <uv.h>
#include <llhttp.h>
int main(void) { return 0; }
