"""Property tests of kubesim's store (the emulated API server's state): the event stream is the truth."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim.errors import ApiError
from kubesim.patching import merge_patch
from kubesim.selectors import LabelSelector
from kubesim.server import KubeSim

NAMES = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "patch", "delete", "finalize", "unfinalize"]), NAMES, st.integers(0, 3)
    ),
    max_size=40,
)


def _apply(store: Any, rtype: Any, op: str, name: str, value: int) -> None:
    body = {"metadata": {"name": name}, "data": {"v": str(value)}}
    try:
        if op == "create":
            store.create(rtype, "default", body)
        elif op == "patch":
            store.patch(rtype, "default", name, lambda o: merge_patch(o, {"data": {"v": str(value)}}))
        elif op == "delete":
            store.delete(rtype, "default", name)
        else:
            finalizers = ["x"] if op == "finalize" else None
            store.patch(
                rtype, "default", name, lambda o: merge_patch(o, {"metadata": {"finalizers": finalizers}})
            )
    except ApiError:
        pass  # 404/409/422 are legitimate answers to random operations


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_replaying_the_event_stream_rebuilds_the_store(ops):
    """Versions strictly increase, and ADDED/MODIFIED/DELETED replayed in order give the final state."""
    store = KubeSim(https_port=None).store
    ns_type = store.registry.get("", "v1", "namespaces")
    rtype = store.registry.get("", "v1", "configmaps")
    store.create(ns_type, "", {"metadata": {"name": "default"}})
    sub = store.subscribe(rtype.key)
    for op, name, value in ops:
        _apply(store, rtype, op, name, value)
    replayed: dict[str, dict] = {}
    last = 0
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        assert event.rv > last and event.obj["metadata"]["resourceVersion"] == str(event.rv)
        last = event.rv
        name = event.obj["metadata"]["name"]
        if event.type == "DELETED":
            assert name in replayed
            del replayed[name]
        else:
            assert (event.type == "ADDED") == (name not in replayed)
            replayed[name] = event.obj
    assert replayed == {o["metadata"]["name"]: o for o in store.items(rtype.key)}


LABELS = st.dictionaries(st.sampled_from(["app", "tier", "x"]), st.sampled_from(["a", "b", ""]), max_size=3)


@given(
    LABELS,
    st.sampled_from(["app", "tier", "x"]),
    st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2),
)
def test_set_selectors_agree_with_their_definition(labels, key, values):
    obj = {"metadata": {"labels": labels}}
    listed = ",".join(values)
    assert LabelSelector.parse(f"{key} in ({listed})").matches(obj) == (labels.get(key) in values)
    assert LabelSelector.parse(f"{key} notin ({listed})").matches(obj) == (labels.get(key) not in values)
    assert LabelSelector.parse(key).matches(obj) == (key in labels)
    assert LabelSelector.parse(f"!{key}").matches(obj) == (key not in labels)
    assert LabelSelector.parse(f"{key}!={values[0]}").matches(obj) == (labels.get(key) != values[0])
