"""The emulator's network volumes (REST v2) and pod placement with one, over raw HTTP, and
thinnka's REST client against them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.world._runpod_records import NO_CAPACITY
from tests.world.runpod import FakeRunpod
from thinnka.clients.runpod import PodSpec
from thinnka.clients.runpod.rest import RestRunpod, create_body
from thinnka.clients.runpod.volumes import find_volume, volume_api

pytestmark = pytest.mark.timeout(60)

POD: dict[str, Any] = {
    "name": "thinnka-vol",
    "image": "runpod/pytorch:test",
    "gpu": {"id": "NVIDIA L40S", "count": 1},
    "ports": ["22/tcp"],
    "startSsh": True,
}


def test_volume_crud_with_a_closed_body(v2: httpx.Client) -> None:
    assert v2.get("/network-volumes").json() == {"networkVolumes": []}
    assert v2.post("/networkvolumes", json={}).status_code == 404  # the path is hyphenated
    bad = v2.post("/network-volumes", json={"name": "v", "size": 5, "dataCenterId": "US-KS-2"})
    assert bad.status_code == 422 and "dataCenterId" in bad.text and "size" in bad.text
    nowhere = v2.post("/network-volumes", json={"name": "v", "size": 10, "dataCenter": "XX"})
    assert nowhere.status_code == 400 and "US-KS-2" in nowhere.json()["detail"]
    made = v2.post("/network-volumes", json={"name": "v", "size": 10, "dataCenter": "EU-RO-1"})
    assert made.status_code == 201
    volume = made.json()
    assert (volume["dataCenter"], volume["type"]) == ("EU-RO-1", "STANDARD")
    assert v2.get(f"/network-volumes/{volume['id']}").json() == volume
    assert v2.get("/network-volumes").json() == {"networkVolumes": [volume]}
    assert v2.delete(f"/network-volumes/{volume['id']}").status_code == 204
    assert v2.get(f"/network-volumes/{volume['id']}").status_code == 404


def test_a_pod_with_a_volume_is_placed_only_in_its_data_center_on_secure_cloud(
    v2: httpx.Client,
) -> None:
    volume = v2.post("/network-volumes", json={"name": "v", "size": 10, "dataCenter": "EU-RO-1"})
    mount = {"network": [{"volumeId": volume.json()["id"], "path": "/workspace"}]}
    elsewhere = v2.post("/pods", json={**POD, "mounts": mount, "dataCenterIds": ["US-KS-2"]})
    assert elsewhere.status_code == 400 and elsewhere.json()["detail"] == NO_CAPACITY
    community = v2.post("/pods", json={**POD, "mounts": mount, "cloud": "COMMUNITY"})
    assert community.status_code == 400 and "Secure Cloud" in community.text
    unknown = {"network": [{"volumeId": "nope", "path": "/workspace"}]}
    assert v2.post("/pods", json={**POD, "mounts": unknown}).status_code == 400
    placed = v2.post("/pods", json={**POD, "mounts": mount, "dataCenterIds": ["EU-RO-1"]})
    assert placed.status_code == 201, placed.text
    assert placed.json()["dataCenterId"] == "EU-RO-1"


def test_the_rest_client_finds_creates_and_places_volumes(runpod_account: FakeRunpod) -> None:
    client = RestRunpod(runpod_account.base_url, runpod_account.api_key)
    try:
        api = volume_api(client)
        assert api is not None
        assert find_volume(api, "ckpt") is None
        centers = api.gpu_data_centers("NVIDIA L40S", 1)
        assert "US-KS-2" in centers
        made = api.create_volume("ckpt", 5, centers[0])  # below Runpod's 10 GB floor: raised
        assert (made.size_gb, made.data_center) == (10, centers[0])
        assert find_volume(api, "ckpt") == made
        spec = PodSpec(
            name="p",
            image="img",
            gpu_type_id="NVIDIA L40S",
            gpu_count=1,
            cloud_type="SECURE",
            volume_gb=40,
            container_disk_gb=40,
            min_vcpu=0,
            min_memory_gb=0,
            env={},
            network_volume_id=made.id,
            data_center_ids=(made.data_center,),
            volume_mount_path="/workspace",
        )
        body = create_body(spec)  # the volume instead of a volume disk, in its data center
        assert body["mounts"] == {"network": [{"volumeId": made.id, "path": "/workspace"}]}
        assert body["dataCenterIds"] == [made.data_center]
        pod = client.create_pod(spec)
        assert runpod_account.pod(pod.id) is not None
    finally:
        client.close()


def test_graphql_speaks_no_volumes(runpod_account: FakeRunpod) -> None:
    from thinnka.clients.runpod.graphql import GraphQLRunpod

    client = GraphQLRunpod(runpod_account.base_url, runpod_account.api_key)
    try:
        assert volume_api(client) is None
    finally:
        client.close()


def test_a_lost_pod_takes_its_disk_and_a_volume_stays(
    runpod_account: FakeRunpod, v2: httpx.Client, tmp_path: Any
) -> None:
    root = tmp_path / "workspace"
    runpod_account.use_disks(root, tmp_path / "disks")
    plain = v2.post("/pods", json=POD).json()
    (root / "checkpoint-2").mkdir()  # written by the pod to its own disk
    runpod_account.lose_pod(plain["id"])
    volume = v2.post("/network-volumes", json={"name": "v", "size": 10, "dataCenter": "US-KS-2"})
    mount = {"network": [{"volumeId": volume.json()["id"], "path": "/workspace"}]}
    first = v2.post("/pods", json={**POD, "mounts": mount}).json()
    assert not (root / "checkpoint-2").exists()  # the lost pod's disk is gone
    (root / "checkpoint-4").mkdir()
    runpod_account.lose_pod(first["id"])
    v2.post("/pods", json={**POD, "mounts": mount})
    assert (root / "checkpoint-4").is_dir()  # the next pod mounts the volume with its files
