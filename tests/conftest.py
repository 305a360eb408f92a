"""Session-wide test settings.

``TRITON_INTERPRET=1``: the suite runs on CPUs, where Triton kernels run only under Triton's
interpreter (``tests/test_triton_neurons.py``). It has to be on before ``triton`` is first imported,
because Triton's own library functions (``tl.zeros``, ``tl.sum``) are decorated for the interpreter or
for a GPU at that import; a test-level fixture would be too late once any module has imported it. A
run that sets the variable itself (``TRITON_INTERPRET=0`` on a GPU machine) keeps its value.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
