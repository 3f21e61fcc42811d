"""A Redis client library (redis-py) against Haze's RESP port: counters, sets, maps and registers,
type errors, pipelining and RESP3, through different nodes of a cluster. Run by
scripts/resp-clients.sh with the nodes' RESP addresses; prints what it tried and what held."""

import sys

import redis


def client(addr, protocol):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), protocol=protocol, decode_responses=True)


def main(addrs):
    clients = [client(a, 2) for a in addrs] + [client(a, 3) for a in addrs]
    writer, readers = clients[0], clients[1:]
    n = 0
    for i in range(20):
        writer.incr(f"py:visits:{i}")
        writer.sadd(f"py:list:{i}", "milk", "eggs")
        writer.hset(f"py:user:{i}", mapping={"name": "Ada", "lang": "rust"})
        writer.hincrby(f"py:user:{i}", "visits", 2)
        writer.set(f"py:title:{i}", "Groceries")
        n += 5
    for r in readers:
        for i in range(20):
            assert r.get(f"py:visits:{i}") == "1"
            assert r.smembers(f"py:list:{i}") == {"milk", "eggs"}
            assert r.hgetall(f"py:user:{i}") == {"name": "Ada", "lang": "rust", "visits": "2"}
            assert r.get(f"py:title:{i}") == "Groceries"
    try:
        writer.get("py:list:0")
        raise AssertionError("GET of a set did not fail")
    except redis.exceptions.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e
    try:
        writer.delete("py:list:0")
        raise AssertionError("DEL did not fail")
    except redis.exceptions.ResponseError as e:
        assert "no deletes" in str(e), e
    pipe = readers[-1].pipeline(transaction=False)
    for _ in range(500):
        pipe.incr("py:piped")
    pipe.get("py:piped")
    replies = pipe.execute()
    assert replies[-1] == "500", replies[-1]
    assert replies[:500] == list(range(1, 501)), replies[:5]
    print(
        f"redis-py: {n} writes through {addrs[0]}, read back through {len(readers)} clients "
        f"(RESP2 and RESP3) on {len(addrs)} nodes; WRONGTYPE and DEL refused; a pipeline of 500 "
        "INCRs answered in order"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
