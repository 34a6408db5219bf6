/**
 * The VRRP keywords of keepalived.conf's top level (vrrp_script, vrrp_track_file,
 * vrrp_sync_group, vrrp_instance) -> VrrpConfig.
 */
import type { ConfigBuilder } from './index.ts';
import type { Table } from './schema.ts';

export const vrrpKeywords: Table<ConfigBuilder> = {};
