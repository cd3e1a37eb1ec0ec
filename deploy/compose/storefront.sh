#!/bin/sh
# The compose stack's demo storefront (compose.yaml): the storefront reads
# its keys from the environment only, so this hands it the ones the setup
# service left in $PIIVAULT_DEMO_DIR. DEMO ONLY.
set -eu
dir=${PIIVAULT_DEMO_DIR:?}
STOREFRONT_API_KEY=$(cat "$dir/storefront_api_key")
STOREFRONT_PUBLISHABLE_KEY=$(cat "$dir/storefront_publishable_key")
export STOREFRONT_API_KEY STOREFRONT_PUBLISHABLE_KEY
exec storefront
