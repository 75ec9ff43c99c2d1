"""Annotation patches: computed by diff, deterministic and idempotent."""

from __future__ import annotations

import json

import jsonpatch

from webhook.core.model import AppliedFinding, Decision, Finding, Mode, Verdict
from webhook.core.mutate import ANNOTATION_REVISION, ANNOTATION_VIOLATIONS, patch_for

OBJ = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
       "metadata": {"name": "p", "namespace": "a", "annotations": {"team": "a"}}, "spec": {}}
DENIED = Decision(Verdict.DENIED, (AppliedFinding(Finding("r", "spec.egress[0]", "m"), Mode.ENFORCE),))


def test_the_patch_adds_the_findings_and_revision_and_keeps_other_annotations() -> None:
    patched = jsonpatch.apply_patch(OBJ, patch_for(OBJ, DENIED, "rev"))
    ann = patched["metadata"]["annotations"]
    assert ann["team"] == "a"
    assert ann[ANNOTATION_REVISION] == "rev"
    assert json.loads(ann[ANNOTATION_VIOLATIONS]) == [{"mode": "enforce", "path": "spec.egress[0]", "rule": "r"}]
    assert patched["spec"] == OBJ["spec"]


def test_reapplying_to_the_patched_object_is_a_no_op() -> None:
    patched = jsonpatch.apply_patch(OBJ, patch_for(OBJ, DENIED, "rev"))
    assert patch_for(patched, DENIED, "rev") == []


def test_objects_without_annotations_get_the_map_created() -> None:
    bare = {"kind": "NetworkPolicy", "metadata": {"name": "p"}}
    patched = jsonpatch.apply_patch(bare, patch_for(bare, DENIED, "rev"))
    assert ANNOTATION_VIOLATIONS in patched["metadata"]["annotations"]


def test_a_fixed_object_has_its_stale_record_cleared() -> None:
    patched = jsonpatch.apply_patch(OBJ, patch_for(OBJ, DENIED, "rev"))
    clean = Decision(Verdict.ALLOWED)
    again = jsonpatch.apply_patch(patched, patch_for(patched, clean, "rev"))
    assert again["metadata"]["annotations"][ANNOTATION_VIOLATIONS] == "[]"


def test_skipped_or_failed_evaluations_produce_no_patch() -> None:
    assert patch_for(OBJ, Decision(Verdict.SKIPPED), "rev") == []
    assert patch_for(OBJ, Decision(Verdict.ERROR), "rev") == []


def test_patches_are_deterministic() -> None:
    assert patch_for(OBJ, DENIED, "rev") == patch_for(json.loads(json.dumps(OBJ)), DENIED, "rev")
