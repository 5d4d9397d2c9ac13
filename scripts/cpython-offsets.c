/* The offsets collector/src/cpython/layout.rs takes for CPython 3.9 and
 * 3.10 (frames are PyFrameObjects there), printed from the version's own
 * headers:
 *
 *   V=3.10.13; M=${V%.*}; I=$(pyenv root)/versions/$V/include/python$M
 *   gcc -I$I -I$I/internal scripts/cpython-offsets.c -o /tmp/offsets && /tmp/offsets
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#include <stddef.h>
#include <stdio.h>

int main(void) {
  printf("runtime_interpreters %zu\n", offsetof(_PyRuntimeState, interpreters.head));
  printf("interpreter_threads %zu\n", offsetof(PyInterpreterState, tstate_head));
  printf("thread_next %zu\n", offsetof(PyThreadState, next));
  printf("thread_id (pthread_t) %zu\n", offsetof(PyThreadState, thread_id));
  printf("current_frame (frame) %zu\n", offsetof(PyThreadState, frame));
  printf("frame_previous (f_back) %zu\n", offsetof(PyFrameObject, f_back));
  printf("frame_code (f_code) %zu\n", offsetof(PyFrameObject, f_code));
  printf("code_first_line %zu\n", offsetof(PyCodeObject, co_firstlineno));
  printf("code_filename %zu\n", offsetof(PyCodeObject, co_filename));
  printf("code_name %zu\n", offsetof(PyCodeObject, co_name));
  printf("ascii_header %zu\n", sizeof(PyASCIIObject));
  printf("compact_header %zu\n", sizeof(PyCompactUnicodeObject));
  return 0;
}
