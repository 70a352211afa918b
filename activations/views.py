from django.http import HttpResponse

from accounts.decorators import verified_required


@verified_required
def request_detail(request, pk):
    return HttpResponse("todo")
