# ruff: noqa
# fmt: off
# ARP's example batch script (seed doc arp-batch-processor.txt, 2.2 submit.py), as it is but for
# two things: it reads PROGRESS_UPDATE_URL instead of BATCH_UPDATE_URL, and its Python 2 print
# statements are Python 3 print() calls. tests/browser/test_arp_counters.py runs it.
from time import sleep
from requests import post
from sys import argv
from os import environ
from numpy import random
from string import ascii_uppercase

print('This is a test function for the batch submitting.\n')

## Fetch the URL to POST to
update_url = environ.get('PROGRESS_UPDATE_URL')
print('The update_url is:', update_url, '\n')

## Fetch the passed arguments as passed by submit.sh
params = argv
print('The parameters passed are:')
for n, param in enumerate(params):
    print('Param %d:' % (n + 1), param)
print('\n')

## Run a loop, sleep a second, then POST
for i in range(10):
    sleep(1)
    rand_char = random.choice(list(ascii_uppercase))
 
    print('Step: %d, %s' % (i + 1, rand_char))
    post(update_url, json={'counters' : {'Example Counter' : [i + 1, 'red'],
                                         'Random Char' : rand_char}})
