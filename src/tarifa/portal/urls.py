"""The customer's portal at /portal/ (namespace `portal`).

URL arguments name the kind of record they take (`<kind>_id`): the isolation suite
(tests/test_isolation.py) reads these patterns and requests each with another customer's
record of that kind, so a page added here is covered with no code."""

from django.urls import path

from . import helpdesk, views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("language/", views.LanguageView.as_view(), name="language"),
    path("register/", views.RegisterView.as_view(), name="register"),
    path("reset/", views.ResetView.as_view(), name="reset"),
    path("pay/", views.PayView.as_view(), name="pay"),
    path("pay/return/<uuid:account_id>/", views.PayReturnView.as_view(), name="pay_return"),
    path("accounts/<uuid:account_id>/statement/", views.StatementPdfView.as_view(), name="statement"),
    path("invoices/", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<uuid:invoice_id>/pdf/", views.InvoicePdfView.as_view(), name="invoice_pdf"),
    path("payments/", views.PaymentListView.as_view(), name="payments"),
    path("payments/<uuid:payment_id>/receipt/", views.ReceiptPdfView.as_view(), name="receipt"),
    path("services/", views.ServiceListView.as_view(), name="services"),
    path("services/<uuid:subscription_id>/", views.ServiceView.as_view(), name="service"),
    path("services/<uuid:subscription_id>/tariff/", views.TariffChangeView.as_view(), name="tariff_change"),
    path("services/<uuid:subscription_id>/pause/", views.PauseView.as_view(), name="pause"),
    path("services/<uuid:subscription_id>/resume/", views.ResumeView.as_view(), name="resume"),
    path("help/", views.HelpView.as_view(), name="help"),
    path("profile/", views.ProfileView.as_view(), name="profile"),
    path("view-as/exit/", views.ExitViewAsView.as_view(), name="view_as_exit"),
    # Staff (a staff session and portal.view_as_customer): open the customer's portal read-only.
    path("view-as/<uuid:customer_id>/", views.ViewAsView.as_view(), name="view_as"),
]
if helpdesk.available():  # requests are the tickets app's tickets
    urlpatterns.append(path("help/<uuid:ticket_id>/", views.TicketView.as_view(), name="ticket"))

# Not a customer's page: the isolation suite leaves these to their own tests.
STAFF_PAGES = {"view_as"}
ANONYMOUS_PAGES = {"login", "logout", "language", "register", "reset", "view_as_exit"}
