#!/usr/bin/env bash
# `make reset-demo`: give the demo accounts their opening balances back, while
# `make run` keeps running (a `vigil call` then the README's radclient replay
# leave the debit account overdrawn, and every later call is refused with
# h323-return-code 4). Each account is adjusted with `vigil account adjust`
# semantics: audited (who, when, "make reset-demo"), one transaction each,
# visible in `vigil account history ID`. Accounts already at their opening
# balance are left alone, so running it twice changes nothing.
#
#   scripts/reset-demo.sh [RUN_DIR] [--dry-run]
#
# For a clean slate instead (xDRs and history gone too): stop `make run`
# (Ctrl-C), `rm -rf run/`, `make run`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${1:-run}"
DRY="${2:-}"
CONF="$RUN_DIR/vigil.conf"
PY="${VIGIL_VENV:-$ROOT/.venv}/bin/python"
[ -f "$CONF" ] || { echo "no $CONF: start the demo with 'make run' first" >&2; exit 2; }

exec "$PY" - "$CONF" "$ROOT/etc/demo/provision.yaml" "$DRY" <<'PYEOF'
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from billing import models as m
from billing.adjustments import adjust
from billing.db import make_engine
from billing.provision import load_document
from vigil.config import load

conf, doc_path, dry = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "--dry-run"
engine = make_engine(load(conf))
doc = load_document(doc_path)
for a in doc.get("accounts", []):
    opening = Decimal(str(a.get("balance", 0)))
    with engine.connect() as c:
        row = c.execute(select(m.Account.balance, m.Account.billing_model).where(
            m.Account.account_id == str(a["account_id"]))).first()
    if row is None:
        print(f"{a['account_id']}: not provisioned (run `vigil provision {doc_path}`)")
        continue
    current = Decimal(row.balance)
    # funds change: a debit balance is money, a credit balance is what is owed
    change = opening - current if row.billing_model == "debit" else current - opening
    if change == 0:
        print(f"{a['account_id']}: already at its opening balance {opening}")
        continue
    adj = adjust(engine, str(a["account_id"]), change.quantize(Decimal("0.00001")),
                 "make reset-demo: back to the opening balance", dry_run=dry)
    verb = "would set" if dry else "set"
    print(f"{a['account_id']}: {verb} balance {adj.balance_before} -> {adj.balance_after}")
PYEOF
