"""Optional write protection: a job created with a secret takes updates and re-creates only with
it; reads stay open; jobs without one behave as the MWA guide says."""

from __future__ import annotations

from tasks.store import _keys, job_tag


def get(client, endpoint, **params):
    return client.simulate_get(f"/progress/{endpoint}", params=params)


UPDATE = {"workid": "w", "current": "1", "total": "2"}


def test_secret_guards_updates_and_recreate_but_not_reads(client, store, jobid):
    assert get(client, "create", jobid=jobid, secret="s3cret").status_code == 200
    assert get(client, "update", jobid=jobid, **UPDATE).status_code == 403
    assert get(client, "update", jobid=jobid, secret="wrong", **UPDATE).status_code == 403
    assert get(client, "update", jobid=jobid, secret="s3cre", **UPDATE).status_code == 403
    assert get(client, "update", jobid=jobid, secret="s3cret", **UPDATE).status_code == 202
    resp = get(client, "create", jobid=jobid, desc="hijack")
    assert resp.status_code == 403 and "secret" in resp.json["description"]
    assert get(client, "create", jobid=jobid, desc="hijack", secret="x").status_code == 403
    assert get(client, "status", jobid=jobid).json["desc"] == ""  # the hijack changed nothing
    for endpoint in ("status", "show"):
        assert get(client, endpoint, jobid=jobid).status_code == 200
    assert get(client, "create", jobid=jobid, desc="mine", secret="s3cret").status_code == 200


def test_secret_is_stored_only_as_a_salted_digest(client, store, jobid):
    get(client, "create", jobid=jobid, secret="s3cret")
    meta = store.redis.hgetall(_keys(job_tag(jobid))[0])
    assert b"s3cret" not in b"".join(meta.values())
    assert len(meta[b"secret"]) == 64


def test_batch_with_a_wrong_secret_is_refused_whole(client, jobid):
    get(client, "create", jobid=jobid, secret="k")
    body = (
        f'[{{"jobid": "{jobid}", "workid": "a", "current": 1, "total": 2, "secret": "k"}},'
        f' {{"jobid": "{jobid}", "workid": "b", "current": 1, "total": 2, "secret": "no"}}]'
    )
    resp = client.simulate_post(
        "/progress/update", body=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 403


def test_jobs_without_a_secret_are_open_as_in_the_guide(client, jobid):
    assert get(client, "create", jobid=jobid).status_code == 200
    assert get(client, "update", jobid=jobid, **UPDATE).status_code == 202
    assert get(client, "update", jobid=jobid, secret="anything", **UPDATE).status_code == 202
    assert get(client, "create", jobid=jobid, desc="again").status_code == 200
