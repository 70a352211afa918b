from django.http import HttpResponse


def my_roles(request):
    return HttpResponse("todo")
