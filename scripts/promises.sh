#!/usr/bin/env bash
# Lists the promises of docs/testing.md ("Promises and the tests that keep them") that no test
# checks, and fails if a promise names a test that does not exist (the docs went stale).
#
# Each row of that table is `| ID | promise | tests | proof |`; the tests column names test
# functions in backticks, or says `none` for a promise nothing checks yet.
set -euo pipefail
cd "$(dirname "$0")/.."

table=$(awk '/^## Promises and the tests that keep them/{on=1; next} /^## /{on=0} on && /^\| P[0-9]/' docs/testing.md)
if [ -z "$table" ]; then
    echo "docs/testing.md has no promises table" >&2
    exit 1
fi

promises=0 untested=0 stale=0
while IFS= read -r row; do
    promises=$((promises + 1))
    id=$(cut -d'|' -f2 <<<"$row" | tr -d " ")
    promise=$(cut -d'|' -f3 <<<"$row" | sed "s/^ *//; s/ *$//")
    tests=$(cut -d'|' -f4 <<<"$row")
    names=$(grep -o '`[a-z_0-9:]*`' <<<"$tests" | tr -d '`' | sed 's/.*:://' || true)
    if [ -z "$names" ]; then
        untested=$((untested + 1))
        echo "untested: $id $promise"
        continue
    fi
    for name in $names; do
        if ! grep -rqE "fn ${name}\b" crates/ --include='*.rs'; then
            stale=$((stale + 1))
            echo "stale: $id names \`$name\`, which no test defines" >&2
        fi
    done
done <<<"$table"

echo "$promises promises: $((promises - untested)) with tests, $untested without, $stale stale names"
[ "$stale" -eq 0 ]
