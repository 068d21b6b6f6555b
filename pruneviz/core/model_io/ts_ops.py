"""What a TorchScript module may do without ``--trust``: an allowlist over its compiled graphs.

A TorchScript archive's code is compiled by PyTorch, so reading its text says little (a comment,
a line continuation or a second copy of a file changes the spelling, not the program). Instead,
after loading, every method of the module and of each submodule, and its forward hooks, is
inlined (calls to other methods and functions are pasted in) and each node of the resulting
graphs, in every nested block, is judged by what it is:

* ``prim::`` nodes: only the structural ones in :data:`PRIM_ALLOWED` (constants, control flow,
  lists/tuples/dicts, attribute reads and writes, exceptions, type tests);
* ``aten::`` operators: allowed when every argument and result has a plain value type (tensors,
  numbers, booleans, devices, dtypes, strings used as mode names, and lists, tuples, dicts and
  optionals of those) and the operator is not one of :data:`ATEN_REFUSED` (file, print and global
  state operators) nor one that skips bounds or invariant checks (``*unsafe*``, sparse
  constructors, nested views). This keeps to what PyTorch checks; the memory safety of every
  allowed kernel is PyTorch's, not proven here;
* anything else: other namespaces (``c10d::`` sends tensors over the network), ``prim::PythonOp``,
  ``prim::Print``, ``aten::save``, ``aten::from_file``, a call left unresolved after inlining, a
  custom class (``__torch__.torch.classes``), futures, RRefs or raw storages - needs trust.

:func:`first_refused` returns a one-line description of the first refused node, or None.
"""

from __future__ import annotations

import re

import torch

PRIM_ALLOWED = frozenset(
    "prim::" + name
    for name in (
        "Constant If Loop GetAttr SetAttr ListConstruct ListUnpack TupleConstruct TupleUnpack "
        "TupleIndex TupleSlice DictConstruct DictIndex RaiseException Uninitialized unchecked_cast "
        "unchecked_unwrap_optional NumToTensor ImplicitTensorToNum min max abs device dtype layout "
        "requires_grad is_cuda is_cpu is_mps is_meta is_xpu is_xla is_sparse is_sparse_csr "
        "is_quantized is_mkldnn is_nested is_vulkan is_ipu is_maia is_mtia isinstance type name "
        "EnumName EnumValue StringIndex tolist rangelist index itemsize nbytes data shape grad "
        "CreateObject id"
    ).split()
)

ATEN_REFUSED = frozenset(
    "aten::" + name
    for name in (
        # files, printing (aten::warn is allowed: it raises a Python warning, as nn.MultiheadAttention does)
        "save from_file _print "
        # process-wide state
        "manual_seed seed _cufft_set_plan_cache_max_size record_stream "
        # raw storage and unchecked memory
        "set_ set_data _index_put_impl_ "
        # asynchronous / remote execution
        "wait _fork"
    ).split()
)

# String arguments that name a mode ("mean", "floor", "ij"), an einsum equation, a string the
# program builds or a warning's text; a string named anything else (a file name) is refused.
STR_ARGS_ALLOWED = frozenset(
    "self norm reduce a b rounding_mode mode key interpolation driver substr UPLO approximate "
    "assert_msg separator ord side padding el s fillchar chars l string activation p input "
    "inputs dict idx t to_add algorithm padding_side values old new pad_mode equation indexing "
    "device_type type message item api_name".split()
)

OUTSIDE = "outside the tensor operators pruneviz runs untrusted (it could touch files, the network or the process)"

# Operators that skip bounds or invariant checks (sparse tensors are not checked unless asked; a
# nested view trusts its offsets): memory errors, not just wrong numbers.
_UNCHECKED = re.compile(r"unsafe|sparse|_nested_view_from")

_TYPE_WORD = re.compile(r"[A-Za-z_][\w.]*")
_TYPES_ALLOWED = frozenset(
    "Tensor int float bool complex number Scalar SymInt SymFloat SymBool str Device Generator "
    "ScalarType Layout MemoryFormat QScheme Dimname AnyEnumType NoneType None Optional List Dict "
    "Tuple t t1 t2 tVal t0 Union".split()
)


def _type_ok(text: str) -> bool:
    return all(word in _TYPES_ALLOWED for word in _TYPE_WORD.findall(text))


def operator_refusal(kind: str, schema: torch._C.FunctionSchema | None) -> str | None:
    """Why the operator ``kind`` (``"aten::add"``) with this schema needs trust, or None.

    Shared with the ``.pt2`` checks: only ``aten::`` operators with plain value types pass.
    """
    if not kind.startswith("aten::"):
        return f"{kind} (not a core tensor operator)"
    if kind in ATEN_REFUSED or _UNCHECKED.search(kind):
        return kind
    if schema is None:
        return f"{kind} (an operator without a registered schema)"
    for arg in schema.arguments:
        text = str(arg.type)
        if not _type_ok(text):
            return f"{kind} (it takes a {text})"
        if "str" in _TYPE_WORD.findall(text) and arg.name not in STR_ARGS_ALLOWED:
            return f"{kind} (its string argument {arg.name!r})"
    for ret in schema.returns:
        if not _type_ok(str(ret.type)):
            return f"{kind} (it returns a {ret.type})"
    return None


def _aten_refusal(node: torch._C.Node) -> str | None:
    text = node.schema()
    schema = None
    if text != "(no schema)":
        try:
            schema = torch._C.parse_schema(text)
        except Exception:
            return f"{node.kind()} (an operator whose schema cannot be read)"
    return operator_refusal(node.kind(), schema)


def _values_ok(node: torch._C.Node) -> str | None:
    for value in list(node.inputs()) + list(node.outputs()):
        text = value.type().annotation_str
        if "__torch__.torch.classes" in text or re.search(r"\b(Future|RRef|Await|Storage|Capsule|Stream)\b", text):
            return text
    return None


def node_refusal(node: torch._C.Node) -> str | None:
    """Why this node needs trust (a short phrase naming it), or None when it is allowed.

    ``prim::Enter`` / ``prim::Exit`` (a ``with`` block) are allowed here; their ``__enter__`` and
    ``__exit__`` methods are walked by :func:`first_refused` as further graphs.
    """
    kind = node.kind()
    bad_type = _values_ok(node)
    if bad_type is not None:
        return f"{kind} on a {bad_type}"
    if kind in PRIM_ALLOWED or kind in _CONTEXT:
        return None
    if kind.startswith("aten::"):
        return _aten_refusal(node)
    if kind in ("prim::CallMethod", "prim::CallFunction"):
        return f"{kind} (a call that cannot be resolved before running)"
    return kind


_CONTEXT = {"prim::Enter": "__enter__", "prim::Exit": "__exit__"}


def _walk(block: torch._C.Block):
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _walk(inner)


def _inlined(function) -> torch._C.Graph:
    graph = function.graph.copy()
    torch._C._jit_pass_inline(graph)
    return graph


def _graphs(module: torch.jit.ScriptModule):
    """(where, inlined graph) for every method and hook of ``module`` and its submodules."""
    for prefix, sub in module.named_modules():
        cpp = sub._c
        where = prefix or type(module).__name__
        for method in cpp._method_names():
            yield f"{where}.{method}", cpp._get_method(method).inlined_graph
        for kind, hooks in (("forward hook", cpp._get_forward_hooks()), ("forward pre-hook", cpp._get_forward_pre_hooks())):
            for hook in hooks:
                yield f"{where} {kind} {hook.name}", _inlined(hook)


def first_refused(module: torch.jit.ScriptModule, unit: torch._C.CompilationUnit | None = None) -> str | None:
    """``"aten::save in writer.forward"`` for the first node outside the allowlist, else None.

    ``unit`` is the compilation unit the module was loaded into; the ``__enter__`` / ``__exit__``
    methods of objects used in ``with`` blocks are looked up there and walked too (without it a
    ``with`` block is refused).
    """
    queue = list(_graphs(module))
    seen: set[str] = set()
    while queue:
        where, graph = queue.pop(0)
        for node in _walk(graph.block()):
            why = node_refusal(node)
            if why is not None:
                return f"{why} in {where}"
            method = _CONTEXT.get(node.kind())
            if method is None:
                continue
            qualified = f"{node.input().type().qualified_name()}.{method}"
            function = None
            if unit is not None:
                try:
                    function = unit.find_function(qualified)
                except Exception:
                    function = None
            if function is None:
                return f"{node.kind()} (a with block whose {qualified} cannot be checked) in {where}"
            if qualified not in seen:
                seen.add(qualified)
                queue.append((qualified, _inlined(function)))
    return None
