-- One payment as PostgreSQL sees it through POST /api/v1/payments/: the statements the API
-- issues, in the same order, one round trip each (bench/payments.py runs it with pgbench).
-- Variables: naccounts, nspread (the rows the channel's system account is spread over), userid.
\set aid random(1, :naccounts)
\set spread random(1, :nspread)
\set cents random(1, 9999)
-- authentication: the token, the user's and the roles' permissions
SELECT id, user_id, expires_at, revoked_at FROM identity_apitoken WHERE user_id = ':userid' ORDER BY created_at LIMIT 1;
SELECT ct.app_label, p.codename FROM auth_permission p JOIN identity_user_user_permissions up ON up.permission_id = p.id JOIN django_content_type ct ON ct.id = p.content_type_id WHERE up.user_id = ':userid';
SELECT ct.app_label, p.codename FROM auth_permission p JOIN identity_role_permissions rp ON rp.permission_id = p.id JOIN identity_user_roles ur ON ur.role_id = rp.role_id JOIN django_content_type ct ON ct.id = p.content_type_id WHERE ur.user_id = ':userid';
-- the channel's account row this payment's key picks (ledger.spread_account)
SELECT id AS sysacc FROM bench_spread WHERE n = :spread \gset
BEGIN;
-- the Idempotency-Key claim, read back
INSERT INTO web_idempotentrequest (scope, key, method, path, body_hash, created_at) VALUES ('user:' || ':userid', gen_random_uuid()::text, 'POST', '/api/v1/payments/', md5(random()::text), now()) ON CONFLICT (scope, key) DO NOTHING RETURNING id AS rid, key AS k, gen_random_uuid() AS pid, gen_random_uuid() AS tid, gen_random_uuid() AS ev1, gen_random_uuid() AS ev2, gen_random_uuid() AS aud \gset
SELECT * FROM web_idempotentrequest WHERE id = :rid;
-- the billing account, the channel's system account
SELECT n.billing_account_id AS ba, n.ledger_account_id AS la, b.number AS num FROM bench_accounts n JOIN ledger_billingaccount b ON b.id = n.billing_account_id JOIN ledger_ledgeraccount l ON l.id = b.ledger_account_id WHERE n.n = :aid \gset
SELECT * FROM ledger_ledgeraccount WHERE id = ':sysacc';
SAVEPOINT accept;
SELECT * FROM payments_payment WHERE idempotency_key = 'http:user:' || ':userid' || ':' || ':k';
SAVEPOINT post_transfer;
-- the account lock: customer, then the channel's account
SELECT la.id, la.kind, la.code, la.currency, la.debits_posted, la.credits_posted, la.debits_pending, la.credits_pending, ba.id, ba.number, ba.payment_mode, ba.credit_limit, ba.status, ba.customer_id, (SELECT k.transfer_id FROM ledger_transfer_key k WHERE k.idempotency_key = 'payments:http:user:' || ':userid' || ':' || ':k') FROM ledger_ledgeraccount la LEFT JOIN ledger_billingaccount ba ON ba.ledger_account_id = la.id WHERE la.id = ANY(ARRAY[':la', ':sysacc']::uuid[]) ORDER BY (la.kind = 'system'), la.id FOR UPDATE OF la;
-- the transfer and both accounts' totals
WITH claimed AS (INSERT INTO ledger_transfer_key (idempotency_key, transfer_id, reverses_id, pending_id) VALUES ('payments:http:user:' || ':userid' || ':' || ':k', ':tid', NULL, NULL) ON CONFLICT (idempotency_key) DO NOTHING RETURNING transfer_id), inserted AS (INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags, reference_type, reference_id, idempotency_key, reverses_id, pending_id, memo, actor, created_at) SELECT c.transfer_id, 'HQ', ':sysacc', ':la', :cents / 100.0, 'USD', 'payment', '{"channel": "card"}'::jsonb, 'payments.payment', ':pid', 'payments:http:user:' || ':userid' || ':' || ':k', NULL::uuid, NULL::uuid, '', 'bench', now() FROM claimed c RETURNING id), totals AS (UPDATE ledger_ledgeraccount a SET debits_posted = a.debits_posted + CASE WHEN a.id = ':sysacc' THEN :cents / 100.0 ELSE 0 END, credits_posted = a.credits_posted + CASE WHEN a.id = ':la' THEN :cents / 100.0 ELSE 0 END WHERE a.id IN (':sysacc', ':la') AND EXISTS (SELECT 1 FROM inserted) RETURNING a.id) SELECT id, (SELECT count(*) FROM totals) FROM inserted;
-- the ledger's event (account credited) and the job that hands it to its subscribers
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, handled_at, attempts, last_error) VALUES (':ev1', 'ledger.account_credited', 'HQ', '', '', jsonb_build_object('billing_account', ':ba', 'ledger_account', ':la', 'transfer', ':tid', 'amount', (:cents / 100.0)::text, 'currency', 'USD', 'kind', 'payment'), now(), NULL, 0, '');
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW('events', 'kernel.dispatch_event', 0, NULL, NULL, jsonb_build_object('event_id', ':ev1'), NULL)::procrastinate_job_to_defer_v1]));
RELEASE SAVEPOINT post_transfer;
-- the payment number (kernel.numbering.next_number: series P is a sequence)
SELECT nextval('payments_payment_number') AS seq \gset
-- the payment, its audit event, its domain event
INSERT INTO payments_payment (id, branch, created_at, updated_at, number, billing_account_id, amount, currency, channel, status, transfer_id, debit_account_id, external_reference, payer, gateway_id, provider_txn_id, idempotency_key, received_at, desk_id, shift_id, cashier_id, memo, refunded_amount, reversal_transfer_id, reversed_at, reversal_reason, actor) VALUES (':pid', 'HQ', now(), now(), 'HQ-P' || lpad(':seq', 7, '0'), ':ba', :cents / 100.0, 'USD', 'card', 'applied', ':tid', ':sysacc', '', '', NULL, NULL, 'http:user:' || ':userid' || ':' || ':k', now(), NULL, NULL, NULL, '', 0, NULL, NULL, '', 'bench');
INSERT INTO audit_auditevent (id, branch, at, object_type, object_id, object_repr, action, actor_id, actor_label, request_id, ip, channel, changes, message) VALUES (':aud', 'HQ', now(), 'payments.payment', ':pid', 'HQ-P' || lpad(':seq', 7, '0'), 'accept', ':userid', 'bench-client', md5(random()::text), '127.0.0.1', 'api', jsonb_build_object('amount', jsonb_build_array(NULL, (:cents / 100.0)::text), 'channel', jsonb_build_array(NULL, 'card'), 'billing_account', jsonb_build_array(NULL, ':num')), '');
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, handled_at, attempts, last_error) VALUES (':ev2', 'payments.payment_received', 'HQ', 'payments.payment', ':pid', jsonb_build_object('billing_account', ':ba', 'billing_account_number', ':num', 'amount', (:cents / 100.0)::text, 'currency', 'USD', 'channel', 'card', 'payment', 'HQ-P' || lpad(':seq', 7, '0')), now(), NULL, 0, '');
RELEASE SAVEPOINT accept;
-- the answer stored for retries
UPDATE web_idempotentrequest SET response_status = 201, response_body = jsonb_build_object('id', ':pid', 'number', 'HQ-P' || lpad(':seq', 7, '0'), 'billing_account', ':ba', 'billing_account_number', ':num', 'amount', (:cents / 100.0)::text, 'currency', 'USD', 'channel', 'card', 'status', 'applied', 'received_into', 'clearing:card', 'transfer', ':tid'), completed_at = now() WHERE id = :rid;
COMMIT;
