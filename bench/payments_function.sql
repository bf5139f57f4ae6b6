-- Issue 18 step 3, measured in PostgreSQL alone: the whole booking of one payment as ONE server-side
-- call (bench/payments.py creates this function in the benchmark's database and runs
-- bench/payments_function_pgbench.sql with pgbench, BENCH_FUNCTION=1). The same writes, in the same
-- order, as bench/payments_pgbench.sql (the API's statements): key claim, the two-row account lock
-- (the customer, then a row of the spread channel account), transfer and both balances, the ledger's
-- outbox event and its job, the payment number, the payment, its audit event, its domain event,
-- the stored answer. Not used by the application: it shows what one round trip per payment would
-- buy on this machine, next to the API's pipeline in the same run.
CREATE OR REPLACE FUNCTION bench_book_payment(p_userid uuid, p_aid int, p_spread int, p_cents int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  k text := gen_random_uuid()::text;
  rid bigint; pid uuid := gen_random_uuid(); tid uuid := gen_random_uuid();
  ev1 uuid := gen_random_uuid(); ev2 uuid := gen_random_uuid(); aud uuid := gen_random_uuid();
  ba uuid; la uuid; num text; sysacc uuid; seq bigint; amt numeric := p_cents / 100.0; pnum text;
  n int;
BEGIN
  INSERT INTO web_idempotentrequest (scope, key, method, path, body_hash, created_at)
  VALUES ('user:' || p_userid, k, 'POST', '/api/v1/payments/', md5(k), now())
  ON CONFLICT (scope, key) DO NOTHING RETURNING id INTO rid;
  SELECT n.billing_account_id, n.ledger_account_id, b.number INTO ba, la, num
    FROM bench_accounts n JOIN ledger_billingaccount b ON b.id = n.billing_account_id WHERE n.n = p_aid;
  SELECT id INTO sysacc FROM bench_spread WHERE bench_spread.n = p_spread;
  PERFORM 1 FROM ledger_ledgeraccount l WHERE l.id IN (la, sysacc)
    ORDER BY (l.kind = 'system'), l.id FOR UPDATE;
  WITH claimed AS (
    INSERT INTO ledger_transfer_key (idempotency_key, transfer_id, reverses_id, pending_id)
    VALUES ('payments:http:user:' || p_userid || ':' || k, tid, NULL, NULL)
    ON CONFLICT (idempotency_key) DO NOTHING RETURNING transfer_id
  ), inserted AS (
    INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                                 reference_type, reference_id, idempotency_key, reverses_id, pending_id, memo, actor,
                                 created_at)
    SELECT c.transfer_id, 'HQ', sysacc, la, amt, 'USD', 'payment', '{"channel": "card"}', 'payments.payment',
           pid::text, 'payments:http:user:' || p_userid || ':' || k, NULL, NULL, '', 'bench', now()
    FROM claimed c RETURNING id)
  UPDATE ledger_ledgeraccount a
     SET debits_posted = a.debits_posted + CASE WHEN a.id = sysacc THEN amt ELSE 0 END,
         credits_posted = a.credits_posted + CASE WHEN a.id = la THEN amt ELSE 0 END
   WHERE a.id IN (sysacc, la) AND EXISTS (SELECT 1 FROM inserted);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n <> 2 THEN RAISE EXCEPTION 'transfer not booked'; END IF;
  INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, handled_at,
                                  attempts, last_error)
  VALUES (ev1, 'ledger.account_credited', 'HQ', '', '', jsonb_build_object('billing_account', ba,
          'ledger_account', la, 'transfer', tid, 'amount', amt::text, 'currency', 'USD', 'kind', 'payment'),
          now(), NULL, 0, '');
  PERFORM procrastinate_defer_jobs_v1(ARRAY[ROW('events', 'kernel.dispatch_event', 0, NULL, NULL,
          jsonb_build_object('event_id', ev1), NULL)::procrastinate_job_to_defer_v1]);
  seq := nextval('payments_payment_number');
  pnum := 'HQ-P' || lpad(seq::text, 7, '0');
  INSERT INTO payments_payment (id, branch, created_at, updated_at, number, billing_account_id, amount, currency,
                                channel, status, transfer_id, debit_account_id, external_reference, payer,
                                gateway_id, provider_txn_id, idempotency_key, received_at, desk_id, shift_id,
                                cashier_id, memo, refunded_amount, reversal_transfer_id, reversed_at,
                                reversal_reason, actor)
  VALUES (pid, 'HQ', now(), now(), pnum, ba, amt, 'USD', 'card', 'applied', tid, sysacc, '', '', NULL, NULL,
          'http:user:' || p_userid || ':' || k, now(), NULL, NULL, NULL, '', 0, NULL, NULL, '', 'bench');
  INSERT INTO audit_auditevent (id, branch, at, object_type, object_id, object_repr, action, actor_id, actor_label,
                                request_id, ip, channel, changes, message)
  VALUES (aud, 'HQ', now(), 'payments.payment', pid::text, pnum, 'accept', p_userid, 'bench-client', md5(k),
          '127.0.0.1', 'api', jsonb_build_object('amount', jsonb_build_array(NULL, amt::text), 'channel',
          jsonb_build_array(NULL, 'card'), 'billing_account', jsonb_build_array(NULL, num)), '');
  INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, handled_at,
                                  attempts, last_error)
  VALUES (ev2, 'payments.payment_received', 'HQ', 'payments.payment', pid::text, jsonb_build_object(
          'billing_account', ba, 'billing_account_number', num, 'amount', amt::text, 'currency', 'USD',
          'channel', 'card', 'payment', pnum), now(), NULL, 0, '');
  UPDATE web_idempotentrequest SET response_status = 201, response_body = jsonb_build_object('id', pid,
         'number', pnum, 'billing_account', ba, 'billing_account_number', num, 'amount', amt::text,
         'currency', 'USD', 'channel', 'card', 'status', 'applied', 'transfer', tid), completed_at = now()
   WHERE id = rid;
  RETURN pnum;
END $$;
