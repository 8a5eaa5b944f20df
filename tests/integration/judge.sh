#!/bin/bash
# `sluice judge` end to end: fixed samples (Mann-Whitney + Kayenta-style classification) and
# sequential streams on stdin. Checks exit codes 0/1/2, the printed fields, -o json, and
# file:line / stdin:line errors. Usage: judge.sh SLUICE_BINARY
set -u
sluice=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME CONDITION...
	local name=$1; shift
	if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
run() { # run EXPECTED_EXIT OUTFILE ARGS... (stdin passes through)
	local want=$1 out=$2; shift 2
	"$sluice" judge "$@" >"$out" 2>"$out.err"
	local got=$?
	if [ "$got" != "$want" ]; then
		echo "exit $got, wanted $want for: judge $*"; cat "$out" "$out.err"; return 1
	fi
}

# fixed samples: same data as R's wilcox.test example (U 58, exact p 0.1359)
printf '1.83\n0.50\n1.62\n2.48\n1.68\n1.88\n1.55\n3.06\n1.30\n' >"$tmp/c.txt"
printf '# baseline\n0.878\n0.647\n0.598\n2.05\n1.06\n1.29\n1.07\n3.14\n1.28\n\n' >"$tmp/b.txt"
check "fixed: pass exits 0" run 0 "$tmp/o" --baseline "$tmp/b.txt" --canary "$tmp/c.txt"
check "fixed: prints U" grep -q '^U: *58$' "$tmp/o"
check "fixed: prints the exact p-value" grep -q '^p-value: *0.135911 (exact' "$tmp/o"
check "fixed: prints estimate, interval, effect, classification" \
	bash -c "grep -q '^estimate: *0.56 ' '$tmp/o' && grep -q '^interval:' '$tmp/o' && grep -q '^effect:' '$tmp/o' && grep -q '^classification: *pass' '$tmp/o'"
check "fixed: json at 95%" run 0 "$tmp/j" --baseline "$tmp/b.txt" --canary "$tmp/c.txt" -o json --confidence 0.95
check "fixed: json fields" python3 -c "
import json,sys; d=json.load(open('$tmp/j'))
assert d['u']==58 and abs(d['p_value']-0.13591114767585355)<1e-12, d
assert d['interval']==[-0.36999999999999988, 1.1830000000000001], d
assert d['method']=='exact' and d['classification']=='pass'"

# a clear increase fails (exit 1); --direction decrease ignores it
for i in $(seq 1 40); do echo "$((100 + i % 7))"; done >"$tmp/b2.txt"
for i in $(seq 1 40); do echo "$((150 + i % 7))"; done >"$tmp/c2.txt"
check "fixed: increase is high, exit 1" run 1 "$tmp/o" --baseline "$tmp/b2.txt" --canary "$tmp/c2.txt"
check "fixed: classification high" grep -q '^classification: *high' "$tmp/o"
check "fixed: direction decrease passes" run 0 "$tmp/o" --baseline "$tmp/b2.txt" --canary "$tmp/c2.txt" --direction decrease
check "fixed: allowed increase 2.0 passes" run 0 "$tmp/o" --baseline "$tmp/b2.txt" --canary "$tmp/c2.txt" --allowed-increase 2.0

# invalid input: file:line, exit 2
printf '1\n2\nabc\n' >"$tmp/bad.txt"
check "fixed: bad number exit 2" run 2 "$tmp/o" --baseline "$tmp/bad.txt" --canary "$tmp/c.txt"
check "fixed: error names file:line" grep -q "bad.txt:3: 'abc' is not a finite number" "$tmp/o.err"
check "fixed: missing file exit 2" run 2 "$tmp/o" --baseline "$tmp/nope.txt" --canary "$tmp/c.txt"
check "usage: unknown option exit 2" run 2 "$tmp/o" --frobnicate
check "usage: bad direction exit 2" run 2 "$tmp/o" --baseline "$tmp/b.txt" --canary "$tmp/c.txt" --direction up
check "usage: --help exit 0" run 0 "$tmp/o" --help
check "usage: help text" grep -q -- '--sequential --kind errors|latency' "$tmp/o"

# sequential errors: a canary failing every request at 10% traffic fails quickly (exit 1)
{ echo "weight 10"; for i in $(seq 1 200); do echo "baseline 0"; echo "canary 1"; done; } >"$tmp/s1"
check "sequential: gross regression fails" run 1 "$tmp/o" --sequential --kind errors <"$tmp/s1"
check "sequential: decision and line" bash -c "grep -q '^decision: *fail' '$tmp/o' && grep -q '^line: *9$' '$tmp/o'"
check "sequential: json" run 1 "$tmp/j" --sequential --kind errors -o json <"$tmp/s1"
check "sequential: json fields" python3 -c "
import json; d=json.load(open('$tmp/j'))
assert d['decision']=='fail' and d['line']==9, d
s=d['statistic']; assert s['e_value_fail']>=s['threshold']==20, d
assert d['canary']=={'events':4,'observations':4}, d"
# a short healthy stream ends undecided: continue, exit 0, the line is the last one
{ echo "weight 50"; for i in $(seq 1 100); do echo "baseline 0"; echo "canary 0"; done; } >"$tmp/s2"
check "sequential: stream ends first, continue" run 0 "$tmp/o" --sequential --kind errors <"$tmp/s2"
check "sequential: continue at line 201" bash -c "grep -q '^decision: *continue' '$tmp/o' && grep -q '^line: *201$' '$tmp/o'"
# healthy and long enough: pass
python3 -c "
import random; r=random.Random(5); print('weight 50')
for i in range(400000):
    c=r.random()<0.5; print(('canary' if c else 'baseline'), int(r.random()<0.05))" >"$tmp/s3"
check "sequential: equal rates pass" run 0 "$tmp/o" --sequential --kind errors --tolerance 0.25 <"$tmp/s3"
check "sequential: pass printed" grep -q '^decision: *pass' "$tmp/o"
# latency: a 50% slower canary fails; share not given (estimated)
python3 -c "
import random; r=random.Random(3)
for i in range(20000):
    c=r.random()<0.2; v=r.lognormvariate(4.6,0.4)*(1.5 if c else 1); print(('canary' if c else 'baseline'), round(v,2))" >"$tmp/s4"
check "sequential: latency regression fails" run 1 "$tmp/o" --sequential --kind latency <"$tmp/s4"
check "sequential: share estimated" grep -q '(estimated)' "$tmp/o"
# invalid streams: stdin:LINE, exit 2
check "sequential: bad value exit 2" run 2 "$tmp/o" --sequential --kind errors < <(printf 'weight 10\ncanary 0\ncanary 2\n')
check "sequential: error names stdin:3" grep -q 'stdin:3: an error observation is 0 or 1' "$tmp/o.err"
check "sequential: bad word exit 2" run 2 "$tmp/o" --sequential --kind latency < <(printf 'baseline 1\nkanary 5\n')
check "sequential: error names stdin:2" grep -q "stdin:2: unknown observation 'kanary'" "$tmp/o.err"
check "sequential: weight with a percent sign" run 1 "$tmp/o" --sequential --kind errors < <(sed 's/^weight 10$/weight 10%/' "$tmp/s1")
check "sequential: share 10% printed" grep -q '^share: *10% (given)' "$tmp/o"
check "sequential: bad weight exit 2" run 2 "$tmp/o" --sequential --kind errors < <(printf 'weight 120\n')
check "sequential: missing --kind exit 2" run 2 "$tmp/o" --sequential </dev/null

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all judge checks passed"
